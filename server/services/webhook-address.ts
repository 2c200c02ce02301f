import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { badRequest } from './errors';

/**
 * Address ranges a webhook may not reach unless WEBHOOK_ALLOW_PRIVATE is set: private
 * networks, loopback, link-local (which contains the cloud metadata address 169.254.169.254),
 * carrier-grade NAT, multicast and reserved ranges, and their IPv6 counterparts (unique
 * local fc00::/7 contains AWS's IPv6 metadata address fd00:ec2::254).
 */
const BLOCKED = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) BLOCKED.addSubnet(network, prefix, 'ipv4');
for (const [network, prefix] of [
  ['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96], ['2001:db8::', 32],
] as const) BLOCKED.addSubnet(network, prefix, 'ipv6');

/** Tells whether `address` (an IPv4 or IPv6 literal) is in a range webhooks may not reach. */
export function isBlockedAddress(address: string): boolean {
  // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) reaches the IPv4 host it embeds.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return BLOCKED.check(mapped[1]!, 'ipv4');
  // URL parsing writes it in hex (::ffff:c0a8:1), which names the same IPv4 host.
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hex) {
    const high = parseInt(hex[1]!, 16);
    const low = parseInt(hex[2]!, 16);
    return BLOCKED.check(`${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`, 'ipv4');
  }
  const family = isIP(address);
  if (family === 0) return true;
  return BLOCKED.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Parses a webhook URL, rejecting anything but http(s) without credentials. */
export function parseWebhookUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw badRequest(`webhook URL ${JSON.stringify(raw)} is not a valid URL; use an absolute http:// or https:// URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw badRequest(`webhook URL ${JSON.stringify(raw)} uses ${url.protocol}; use http:// or https://`);
  }
  if (url.username || url.password) {
    throw badRequest(`webhook URL ${JSON.stringify(url.host)} contains credentials; remove them and verify the signature header instead`);
  }
  return url;
}

/**
 * Resolves `hostname` and returns the addresses a webhook may connect to. Throws BAD_REQUEST
 * when any address is blocked, because a host that resolves to both kinds could be switched
 * between them, unless `allowPrivate` is set.
 */
export async function resolveWebhookHost(hostname: string, allowPrivate: boolean): Promise<{ address: string; family: 4 | 6 }[]> {
  const bare = hostname.replace(/^\[|\]$/g, '');
  let addresses: { address: string; family: number }[];
  if (isIP(bare)) {
    addresses = [{ address: bare, family: isIP(bare) }];
  } else {
    try {
      addresses = await lookup(bare, { all: true, verbatim: true });
    } catch (error) {
      throw badRequest(`webhook host ${bare} could not be resolved (${(error as NodeJS.ErrnoException).code ?? 'DNS error'}); check the URL`);
    }
  }
  if (!allowPrivate) {
    const blocked = addresses.find((entry) => isBlockedAddress(entry.address));
    if (blocked) {
      throw badRequest(`webhook host ${bare} resolves to ${blocked.address}, a private, loopback, link-local or metadata address; use a public address, or set WEBHOOK_ALLOW_PRIVATE=1 on a local install`);
    }
  }
  return addresses.map((entry) => ({ address: entry.address, family: entry.family === 6 ? 6 : 4 }));
}
