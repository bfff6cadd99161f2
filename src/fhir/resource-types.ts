/** The resource types this server hosts: patient data, consultations and treatment. */
export const SUPPORTED_RESOURCE_TYPES = ['Patient', 'Encounter', 'MedicationRequest'] as const;
export type SupportedResourceType = (typeof SUPPORTED_RESOURCE_TYPES)[number];

export function isSupportedResourceType(type: string): type is SupportedResourceType {
  return (SUPPORTED_RESOURCE_TYPES as readonly string[]).includes(type);
}
