/**
 * Router (src/routing/router.ts): the read rotation and where a failed read goes with the
 * master down (fallbackNode), with fake nodes. Checks that the fallback's round-robin
 * never disturbs the rotation's (a shared position once sent reads to `undefined`).
 */
import t from 'tap';
import type { Node } from '../../src/backend/node.js';
import { Router } from '../../src/routing/router.js';

function fakeNode(label: string, role: 'master' | 'slave', extra: Partial<{ state: string; linkUp: boolean }> = {}): Node {
  return {
    label,
    role: role === 'master' ? 'master' : 'replica',
    state: extra.state ?? 'up',
    reachable: (extra.state ?? 'up') !== 'down',
    ejected: false,
    weight: 1,
    lag: 0,
    health: { linkUp: extra.linkUp ?? true, loading: false, role },
  } as unknown as Node;
}

t.test('fallbackNode: a standby replica first, else any up replica, never the one that failed', async (t) => {
  const master = fakeNode('m', 'master', { state: 'down' });
  const linked = fakeNode('r1', 'slave', { linkUp: false });
  const promoted = fakeNode('r2', 'master');
  const router = new Router(master, [linked, promoted], 'prefer-replica', 10);
  t.equal(router.fallbackNode(null), linked, 'a replica that serves reads with the master down');
  t.equal(router.fallbackNode(linked), promoted, 'else an up replica, a promoted one included');
  t.equal(new Router(master, [linked], 'master', 10).fallbackNode(null), null, 'never for policy master');
});

t.test('fallbackNode does not move the rotation past its end', async (t) => {
  const master = fakeNode('m', 'master');
  const replicas = [fakeNode('r1', 'slave'), fakeNode('r2', 'slave')];
  const router = new Router(master, replicas, 'prefer-replica', 10);
  for (let i = 0; i < 5; i++) router.fallbackNode(null);
  const reads = Array.from({ length: 6 }, () => router.readNode()?.label);
  t.same(reads, ['r1', 'r2', 'r1', 'r2', 'r1', 'r2']);
});
