/**
 * JSON schemas of the route parameters, for Fastify's validation and for readers of the route table. They state
 * the shape only: what an id or a version may look like is a FHIR rule, answered by the interactions with the
 * status FHIR gives it (404 for an id that cannot exist, 400 for an update naming an invalid one).
 */
export const ID_PARAMS = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1 } },
  required: ['id'],
} as const;

export const VERSION_PARAMS = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1 }, vid: { type: 'string', minLength: 1 } },
  required: ['id', 'vid'],
} as const;

export const COMPARTMENT_PARAMS = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1 }, compartmentType: { type: 'string', minLength: 1 } },
  required: ['id', 'compartmentType'],
} as const;

export const EXPORT_JOB_PARAMS = {
  type: 'object',
  properties: { jobId: { type: 'string', minLength: 1 } },
  required: ['jobId'],
} as const;

export const EXPORT_FILE_PARAMS = {
  type: 'object',
  properties: { jobId: { type: 'string', minLength: 1 }, file: { type: 'string', minLength: 1 } },
  required: ['jobId', 'file'],
} as const;
