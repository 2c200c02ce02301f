// The typed client lives in packages/client (`@adapters/client`); this path stays for the
// runner, the scripts and the tests that import it.
export { createClient, type AppRouter, type Client, type ClientOptions } from '@adapters/client';
