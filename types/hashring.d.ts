// hashring 3 ships no types; only the surface sidecache uses.
declare module 'hashring' {
  type Servers = string[] | Record<string, { weight?: number; vnodes?: number }>;
  interface Options { 'vnode count'?: number; 'max cache size'?: number; replicas?: number }
  class HashRing {
    constructor(servers?: Servers, algorithm?: string, options?: Options);
    get(key: string): string;
    range(key: string, size?: number, unique?: boolean): string[];
  }
  export default HashRing;
}
