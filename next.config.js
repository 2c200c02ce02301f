/** @type {import('next').NextConfig} */
const nextConfig = {
  // Native and WASM database drivers must be loaded by Node at run time, not bundled.
  serverExternalPackages: ['@electric-sql/pglite', 'pg', '@node-rs/argon2', 'pino', '@huggingface/tokenizers'],
  typescript: { ignoreBuildErrors: false },
  poweredByHeader: false,
};
export default nextConfig;
