/**
 * MongoDB persistence of the server's own OAuth 2 authorization server (src/auth): every query of that feature
 * lives here.
 *
 *   oauth_clients  registered clients (SMART Backend Services) and the development client; never a plain secret
 *   oauth_keys     the authorization server's signing keys (private JWKs), created on first start
 *   oauth_replay   client assertion ids (jti) already used, until the assertion could no longer be accepted anyway
 *   oauth_models   anything else oidc-provider asks its adapter to keep (nothing, with the features we enable)
 *
 * Expiring documents carry `expiresAt` with a TTL index; readers also check it, because MongoDB deletes expired
 * documents only once a minute.
 */
import { MongoServerError, type Collection, type Db } from 'mongodb';
import type { JWK } from 'jose';
import type { AdapterPayload } from 'oidc-provider';

export const OAUTH_CLIENTS_COLLECTION = 'oauth_clients';
export const OAUTH_KEYS_COLLECTION = 'oauth_keys';
export const OAUTH_REPLAY_COLLECTION = 'oauth_replay';
export const OAUTH_MODELS_COLLECTION = 'oauth_models';

export type ClientAuthMethod = 'private_key_jwt' | 'client_secret_basic';
export type ClientStatus = 'active' | 'revoked';

/** A JSON Web Key Set as registered for a client: public keys only (checked at registration). */
export interface PublicJwks {
  keys: JWK[];
}

export interface ClientDocument {
  /** The client_id. */
  _id: string;
  name: string;
  /** The scopes the client may be granted (any subset of them per token request). */
  scopes: string[];
  jwks?: PublicJwks;
  jwks_uri?: string;
  authMethod: ClientAuthMethod;
  /** client_secret_basic only: a scrypt hash of the secret (see src/auth/clients.ts), never the secret itself. */
  secretHash?: string;
  status: ClientStatus;
  createdAt: Date;
  revokedAt?: Date;
}

export interface SigningKeyDocument {
  /** The key id (kid): the key's RFC 7638 thumbprint. */
  _id: string;
  /** 1 for the key made on first start; a rotation would add 2, 3… (the highest signs). Unique. */
  generation: number;
  alg: string;
  /** The private key as a JWK (with kid, alg, use). Whoever can read this collection can mint access tokens. */
  privateJwk: JWK;
  createdAt: Date;
}

interface ReplayDocument {
  /** Digest of (client id, jti), as oidc-provider computes it. */
  _id: string;
  /** What oidc-provider's ReplayDetection model saved (iss, iat, exp…). */
  payload: AdapterPayload;
  expiresAt: Date;
}

interface ModelDocument {
  /** `${model}:${id}` */
  _id: string;
  model: string;
  payload: AdapterPayload;
  uid?: string;
  userCode?: string;
  grantId?: string;
  consumed?: number;
  expiresAt?: Date;
}

const DUPLICATE_KEY = 11000;

function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === DUPLICATE_KEY;
}

export class OAuthStore {
  private readonly clients: Collection<ClientDocument>;
  private readonly keys: Collection<SigningKeyDocument>;
  private readonly replay: Collection<ReplayDocument>;
  private readonly models: Collection<ModelDocument>;

  constructor(db: Db) {
    this.clients = db.collection<ClientDocument>(OAUTH_CLIENTS_COLLECTION);
    this.keys = db.collection<SigningKeyDocument>(OAUTH_KEYS_COLLECTION);
    this.replay = db.collection<ReplayDocument>(OAUTH_REPLAY_COLLECTION);
    this.models = db.collection<ModelDocument>(OAUTH_MODELS_COLLECTION);
  }

  async ensureIndexes(): Promise<void> {
    await this.keys.createIndexes([{ key: { generation: 1 }, name: 'generation', unique: true }]);
    await this.replay.createIndexes([{ key: { expiresAt: 1 }, name: 'expiresAt_ttl', expireAfterSeconds: 0 }]);
    await this.models.createIndexes([
      { key: { expiresAt: 1 }, name: 'expiresAt_ttl', expireAfterSeconds: 0 },
      { key: { model: 1, uid: 1 }, name: 'model_uid', sparse: true },
      { key: { model: 1, userCode: 1 }, name: 'model_userCode', sparse: true },
      { key: { grantId: 1 }, name: 'grantId', sparse: true },
    ]);
  }

  // ---- clients -------------------------------------------------------------------------------------------------

  /** Adds a client; false when the id is taken. */
  async insertClient(client: ClientDocument): Promise<boolean> {
    try {
      await this.clients.insertOne(client);
      return true;
    } catch (error) {
      if (isDuplicateKey(error)) return false;
      throw error;
    }
  }

  /** Creates or replaces a client as a whole (the development client, whose secret changes at every start). */
  async replaceClient(client: ClientDocument): Promise<void> {
    await this.clients.replaceOne({ _id: client._id }, client, { upsert: true });
  }

  async findClient(clientId: string): Promise<ClientDocument | null> {
    return this.clients.findOne({ _id: clientId });
  }

  async listClients(): Promise<ClientDocument[]> {
    return this.clients.find({}).sort({ createdAt: 1, _id: 1 }).toArray();
  }

  /** The client's status alone (the cheap question the resource server asks); null for an unknown client. */
  async clientStatus(clientId: string): Promise<ClientStatus | null> {
    const found = await this.clients.findOne({ _id: clientId }, { projection: { status: 1 } });
    return found ? found.status : null;
  }

  /** Marks an active client revoked; returns the client as it is afterwards (null when unknown). */
  async revokeClient(clientId: string, at: Date): Promise<ClientDocument | null> {
    const updated = await this.clients.findOneAndUpdate(
      { _id: clientId, status: 'active' },
      { $set: { status: 'revoked', revokedAt: at } },
      { returnDocument: 'after' },
    );
    return updated ?? (await this.findClient(clientId));
  }

  // ---- signing keys --------------------------------------------------------------------------------------------

  /** All signing keys, the newest generation first. */
  async signingKeys(): Promise<SigningKeyDocument[]> {
    return this.keys.find({}).sort({ generation: -1 }).toArray();
  }

  /** Adds a key; false when another process added that generation first (the caller then reads theirs). */
  async insertSigningKey(key: SigningKeyDocument): Promise<boolean> {
    try {
      await this.keys.insertOne(key);
      return true;
    } catch (error) {
      if (isDuplicateKey(error)) return false;
      throw error;
    }
  }

  // ---- replay detection ------------------------------------------------------------------------------------------

  async findReplay(id: string, now: Date): Promise<AdapterPayload | undefined> {
    const found = await this.replay.findOne({ _id: id, expiresAt: { $gt: now } });
    return found?.payload;
  }

  /**
   * Records a client assertion id until `expiresAt`, atomically: true when this call recorded it, false when it was
   * already recorded and has not expired (a replay, or the loser of two concurrent requests with the same jti).
   */
  async recordReplay(id: string, payload: AdapterPayload, expiresAt: Date, now: Date): Promise<boolean> {
    try {
      await this.replay.insertOne({ _id: id, payload, expiresAt });
      return true;
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
    }
    // An expired record the TTL monitor has not removed yet may be taken over, by one request only.
    const taken = await this.replay.updateOne({ _id: id, expiresAt: { $lte: now } }, { $set: { payload, expiresAt } });
    return taken.modifiedCount === 1;
  }

  // ---- other oidc-provider models ------------------------------------------------------------------------------

  async upsertModel(model: string, id: string, payload: AdapterPayload, expiresAt: Date | undefined): Promise<void> {
    const document: ModelDocument = {
      _id: `${model}:${id}`,
      model,
      payload,
      ...(payload.uid === undefined ? {} : { uid: payload.uid }),
      ...(payload.userCode === undefined ? {} : { userCode: payload.userCode }),
      ...(payload.grantId === undefined ? {} : { grantId: payload.grantId }),
      ...(expiresAt === undefined ? {} : { expiresAt }),
    };
    await this.models.replaceOne({ _id: document._id }, document, { upsert: true });
  }

  async findModel(model: string, id: string, now: Date): Promise<AdapterPayload | undefined> {
    return this.modelPayload(await this.models.findOne({ _id: `${model}:${id}` }), now);
  }

  async findModelBy(model: string, field: 'uid' | 'userCode', value: string, now: Date): Promise<AdapterPayload | undefined> {
    return this.modelPayload(await this.models.findOne({ model, [field]: value }), now);
  }

  async consumeModel(model: string, id: string, at: number): Promise<void> {
    await this.models.updateOne({ _id: `${model}:${id}` }, { $set: { consumed: at, 'payload.consumed': at } });
  }

  async destroyModel(model: string, id: string): Promise<void> {
    await this.models.deleteOne({ _id: `${model}:${id}` });
  }

  async destroyModelsByGrantId(grantId: string): Promise<void> {
    await this.models.deleteMany({ grantId });
  }

  private modelPayload(document: ModelDocument | null, now: Date): AdapterPayload | undefined {
    if (!document) return undefined;
    if (document.expiresAt && document.expiresAt <= now) return undefined;
    return document.payload;
  }
}
