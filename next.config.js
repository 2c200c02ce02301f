// Browsers PUT upload parts straight to S3, so the Content-Security-Policy must allow the S3
// origin. Next.js fixes headers() at build time (routes-manifest.json), so the origin is the
// build's S3_ENDPOINT; server/startup.ts rejects a server whose S3_ENDPOINT has another origin.
const s3Origin = process.env.S3_ENDPOINT ? new URL(process.env.S3_ENDPOINT).origin : '';

const contentSecurityPolicy = [
  "default-src 'self'",
  // NOTE: 'unsafe-inline' because Next.js writes inline bootstrap scripts into every page and the
  // statically prerendered pages (sign-in, publish, fine-tune) cannot carry a per-request nonce.
  // 'wasm-unsafe-eval' lets the publish page hash files with hash-wasm's WebAssembly sha256.
  "script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  // Model cards may show images from any https host; sanitize-html already drops scripts.
  "img-src 'self' data: blob: https:",
  "font-src 'self'",
  `connect-src 'self'${s3Origin ? ` ${s3Origin}` : ''}`,
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** @type {import('next').NextConfig} */
const nextConfig = {
  // Native and WASM modules (database drivers, onnxruntime-node's addon) must be loaded by Node
  // at run time, not bundled.
  serverExternalPackages: ['@electric-sql/pglite', 'pg', '@node-rs/argon2', 'pino', '@huggingface/tokenizers', 'onnxruntime-node'],
  typescript: { ignoreBuildErrors: false },
  poweredByHeader: false,
  // The app uses no next/image, and the Lambda build (infra/build-lambda.mjs) has no image
  // optimization function, so /_next/image stays off.
  images: { unoptimized: true },
  // server/db.ts reads the SQL migrations at run time, so file tracing must copy them into
  // standalone and OpenNext bundles.
  // onnxruntime-node loads its addon through a path built at run time, which tracing cannot
  // follow, so the playground route names the Linux x64 build (46 MB) itself: the Lambda
  // function in infra/lib/web.ts runs on x86_64.
  outputFileTracingIncludes: {
    '/**': ['./drizzle/migrations/**'],
    '/api/playground': ['./node_modules/onnxruntime-node/bin/napi-v6/linux/x64/**'],
  },
  env: { BUILD_S3_ORIGIN: s3Origin },
  async headers() {
    return [{
      source: '/:path*',
      headers: [
        { key: 'Content-Security-Policy', value: contentSecurityPolicy },
        // Browsers ignore HSTS over plain http, so local runs are unaffected.
        { key: 'Strict-Transport-Security', value: 'max-age=63072000; includeSubDomains' },
        { key: 'X-Content-Type-Options', value: 'nosniff' },
        { key: 'X-Frame-Options', value: 'DENY' },
        { key: 'Referrer-Policy', value: 'strict-origin-when-cross-origin' },
        { key: 'Permissions-Policy', value: 'camera=(), microphone=(), geolocation=(), payment=()' },
        { key: 'Cross-Origin-Opener-Policy', value: 'same-origin' },
      ],
    }];
  },
};
export default nextConfig;
