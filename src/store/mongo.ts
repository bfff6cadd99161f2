/**
 * Connecting to MongoDB, and learning what the deployment can do. Multi-document transactions exist only on
 * replica sets and sharded clusters; a standalone mongod has none, and the store must know which it has.
 */
import { MongoClient, type Db } from 'mongodb';

export interface MongoConnection {
  client: MongoClient;
  db: Db;
  /** True when the deployment is a replica set or a sharded cluster (mongos), where transactions exist. */
  supportsTransactions: boolean;
  close(): Promise<void>;
}

export async function connectMongo(uri: string, dbName: string): Promise<MongoConnection> {
  const client = new MongoClient(uri, {
    // Fail fast at start when the server is unreachable rather than hanging for the driver's 30 s default.
    serverSelectionTimeoutMS: 10_000,
    appName: 'fhir-ledger-server',
  });
  await client.connect();
  const db = client.db(dbName);
  const hello = await db.admin().command({ hello: 1 });
  const supportsTransactions = typeof hello.setName === 'string' || hello.msg === 'isdbgrid';
  return { client, db, supportsTransactions, close: () => client.close() };
}
