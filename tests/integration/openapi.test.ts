import { describe, expect, it } from 'vitest';
import { appUrl } from '../setup/env';
import { newUser } from '../setup/helpers';

// The served document must describe the real endpoint well enough to call it with plain fetch.
describe('OpenAPI document', () => {
  it('describes rules and inputs', async () => {
    const response = await fetch(`${appUrl}/api/openapi.json`);
    expect(response.status).toBe(200);
    const document = await response.json();
    expect(document.openapi).toBe('3.1.0');
    expect(document.paths['/api/trpc/adapters.search'].get['x-authorization']).toBe('public');
    expect(document.paths['/api/trpc/teams.invite'].post['x-authorization']).toBe('role:admin:write:namespace');
    expect(document.paths['/api/trpc/teams.invite'].post.security).toEqual([{ bearer: [] }]);
    const invite = document.paths['/api/trpc/teams.invite'].post.requestBody.content['application/json'].schema;
    expect(invite.required).toEqual(['team']);
    expect(invite.properties.role.enum).toEqual(['owner', 'admin', 'member', 'viewer']);
  });

  it('documents a callable endpoint', async () => {
    const document = await (await fetch(`${appUrl}/api/openapi.json`)).json();
    const user = await newUser('openapi');
    const team = `${user.namespace}-team`;

    // Follow the document: the server URL, the path, POST with a JSON body, a bearer token.
    const [path, item] = Object.entries(document.paths as Record<string, { post?: { operationId: string } }>).find(([, entry]) => entry.post?.operationId === 'teams.create')!;
    const created = await fetch(`${document.servers[0].url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` },
      body: JSON.stringify({ name: team }),
    });
    expect(item.post).toBeDefined();
    expect(created.status).toBe(200);
    expect(await created.json()).toEqual({ result: { data: { namespace: team } } });

    // A query takes its input as JSON in the `input` parameter.
    const query = new URLSearchParams({ input: JSON.stringify({ team }) });
    const read = await fetch(`${document.servers[0].url}/api/trpc/teams.get?${query}`, { headers: { authorization: `Bearer ${user.token}` } });
    expect(read.status).toBe(200);
    expect((await read.json()).result.data.members).toEqual([expect.objectContaining({ role: 'owner' })]);
  });
});
