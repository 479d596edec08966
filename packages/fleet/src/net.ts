import { networkInterfaces } from 'node:os';

/** IPv4 network of `ip/prefix` as `a.b.c.d/prefix`. Pure. */
export function networkOf(ip: string, prefix: number): string {
  const parts = ip.split('.').map(Number);
  const value = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  const net = (value & mask) >>> 0;
  return `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${prefix}`;
}

/** The subnet of `serverIp` on this machine (its interface's CIDR), else its /24. */
export function defaultExportsClients(serverIp: string, interfaces = networkInterfaces()): string {
  for (const list of Object.values(interfaces)) {
    for (const entry of list ?? []) {
      if (entry.family === 'IPv4' && entry.address === serverIp && entry.cidr) {
        const prefix = Number(entry.cidr.split('/')[1]);
        return networkOf(serverIp, prefix);
      }
    }
  }
  return networkOf(serverIp, 24);
}
