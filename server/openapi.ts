import { z } from 'zod';
import { describeRule, type Rule } from './api/authz';

interface ProcedureDef {
  type: 'query' | 'mutation' | 'subscription';
  inputs: unknown[];
  meta?: { rule?: Rule; expensive?: boolean };
}

type JsonSchema = Record<string, unknown>;

/** Converts a procedure's zod input to JSON Schema as clients send it (before defaults and transforms). */
function inputSchema(def: ProcedureDef): JsonSchema | null {
  const input = def.inputs[0];
  if (!(input instanceof z.ZodType)) return null;
  const schema = z.toJSONSchema(input, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  delete schema.$schema;
  return schema;
}

const errorResponse = {
  description: 'tRPC error: `error.message` says what failed and what to do; `error.data.code` is the tRPC code',
  content: { 'application/json': { schema: { type: 'object', properties: { error: { type: 'object' } } } } },
};

/**
 * Builds an OpenAPI 3.1 document of the tRPC HTTP endpoint from the router's procedures.
 * Queries are `GET /api/trpc/{path}?input={JSON}` and mutations `POST /api/trpc/{path}` with
 * the JSON input as the body; results come back as `{"result":{"data":…}}`. Each operation
 * names its authorization rule in `x-authorization`. Output schemas are not described,
 * because the procedures declare none.
 */
export function openApiDocument(procedures: Record<string, { _def: unknown }>, serverUrl: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [path, procedure] of Object.entries(procedures).sort(([a], [b]) => a.localeCompare(b))) {
    const def = procedure._def as ProcedureDef;
    if (def.type === 'subscription') continue;
    const rule = def.meta?.rule;
    const schema = inputSchema(def);
    const operation: Record<string, unknown> = {
      operationId: path,
      tags: [path.split('.')[0]],
      'x-authorization': rule ? describeRule(rule) : 'none',
      security: rule && rule.kind !== 'public' ? [{ bearer: [] }] : [],
      responses: {
        200: { description: 'success', content: { 'application/json': { schema: { type: 'object', properties: { result: { type: 'object', properties: { data: {} } } } } } } },
        400: errorResponse, 401: errorResponse, 403: errorResponse, 404: errorResponse, 429: { ...errorResponse, headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'seconds to wait' } } },
      },
    };
    if (def.type === 'query') {
      if (schema) operation.parameters = [{ name: 'input', in: 'query', required: false, content: { 'application/json': { schema } } }];
      paths[`/api/trpc/${path}`] = { get: operation };
    } else {
      operation.requestBody = { required: Boolean(schema), content: { 'application/json': { schema: schema ?? {} } } };
      paths[`/api/trpc/${path}`] = { post: operation };
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Adapter marketplace API', version: '1', description: 'The tRPC procedures of the app over plain HTTP. Authenticate with `Authorization: Bearer amk_…` (API token) or `amr_…` (runner token).' },
    servers: [{ url: serverUrl }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths,
  };
}
