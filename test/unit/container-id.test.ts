/**
 * /proc/<pid>/cgroup → container id, on lines as real hosts write them (cgroup v1, v2 and
 * hybrid × containerd, CRI-O, Docker, systemd and cgroupfs drivers), plus host processes and
 * garbage; the pod → container metadata mapping; and the per-pid resolver.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { containerFromCgroupFile, containerFromCgroupPath, containerIdFromStatus } from '../../src/k8s/container-id.ts';
import { podContainers, type PodMetadata } from '../../src/k8s/pod-index.ts';
import { k8sResourceAttributes, PodMetadataResolver } from '../../src/k8s/pod-metadata.ts';

const A = 'a3f1c0de9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615e4';
const B = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const POD = 'pod6b1e4f1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b';
const PODS = 'pod6b1e4f1e_2c3d_4e5f_8a9b_0c1d2e3f4a5b'; // systemd escapes '-' in slice names

const V1_LINES = (path: string): string =>
  [
    `12:pids:${path}`,
    `11:hugetlb:${path}`,
    `10:net_cls,net_prio:${path}`,
    `9:memory:${path}`,
    `8:cpu,cpuacct:${path}`,
    `7:devices:${path}`,
    `6:freezer:${path}`,
    `5:blkio:${path}`,
    `4:perf_event:${path}`,
    `3:cpuset:${path}`,
    `2:rdma:/`,
    `1:name=systemd:${path}`,
    `0::/`,
  ].join('\n') + '\n';

describe('containerFromCgroupFile', () => {
  const cases: [string, string, { id: string; runtime: string } | null][] = [
    // cgroup v2, systemd driver
    ['v2 containerd (systemd)', `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-${PODS}.slice/cri-containerd-${A}.scope\n`, { id: A, runtime: 'containerd' }],
    ['v2 CRI-O (systemd)', `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-${PODS}.slice/crio-${A}.scope\n`, { id: A, runtime: 'cri-o' }],
    ['v2 Docker (systemd)', `0::/system.slice/docker-${A}.scope\n`, { id: A, runtime: 'docker' }],
    ['v2 Podman', `0::/machine.slice/libpod-${A}.scope/container\n`, { id: A, runtime: 'podman' }],
    // cgroup v2, cgroupfs driver
    ['v2 containerd (cgroupfs)', `0::/kubepods/burstable/${POD}/${A}\n`, { id: A, runtime: 'unknown' }],
    ['v2 CRI-O (cgroupfs)', `0::/kubepods/${POD}/crio-${A}\n`, { id: A, runtime: 'cri-o' }],
    ['v2 Docker (cgroupfs)', `0::/docker/${A}\n`, { id: A, runtime: 'docker' }],
    // a sub-cgroup inside the container (systemd in a container, or a cgroup-namespaced view)
    ['v2 containerd sub-cgroup', `0::/kubepods.slice/kubepods-${PODS}.slice/cri-containerd-${A}.scope/init.scope\n`, { id: A, runtime: 'containerd' }],
    ['v2 relative to the agent\'s cgroup namespace', `0::/../../kubepods-burstable-${PODS}.slice/cri-containerd-${A}.scope\n`, { id: A, runtime: 'containerd' }],
    // nested: kind / Docker-in-Docker — the innermost container
    ['v2 kind node (docker → containerd)', `0::/system.slice/docker-${B}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-${PODS}.slice/cri-containerd-${A}.scope\n`, { id: A, runtime: 'containerd' }],
    ['v1 kind node (cgroupfs)', V1_LINES(`/docker/${B}/kubepods/besteffort/${POD}/${A}`), { id: A, runtime: 'unknown' }],
    // cgroup v1 (and hybrid: the v2 line is `/`)
    ['v1 containerd (systemd)', V1_LINES(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-${PODS}.slice/cri-containerd-${A}.scope`), { id: A, runtime: 'containerd' }],
    ['v1 containerd (cgroupfs)', V1_LINES(`/kubepods/burstable/${POD}/${A}`), { id: A, runtime: 'unknown' }],
    ['v1 CRI-O (systemd)', V1_LINES(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-${PODS}.slice/crio-${A}.scope`), { id: A, runtime: 'cri-o' }],
    ['v1 Docker (cgroupfs)', V1_LINES(`/docker/${A}`), { id: A, runtime: 'docker' }],
    ['v1 Docker (systemd)', V1_LINES(`/system.slice/docker-${A}.scope`), { id: A, runtime: 'docker' }],
    ['v1 only one hierarchy names it', `4:memory:/kubepods/besteffort/${POD}/${A}\n3:cpuset:/\n1:name=systemd:/user.slice\n`, { id: A, runtime: 'unknown' }],
    // not containers
    ['v2 host service', '0::/system.slice/nginx.service\n', null],
    ['v2 user session', '0::/user.slice/user-0.slice/session-3.scope\n', null],
    ['v2 root', '0::/\n', null],
    ['v1 host process', V1_LINES('/user.slice/user-1000.slice/session-2.scope'), null],
    ['the pod sandbox slice itself', `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-${PODS}.slice\n`, null],
    ['CRI-O conmon (not the container)', `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-${PODS}.slice/crio-conmon-${A}.scope\n`, null],
    // garbage
    ['empty', '', null],
    ['no colons', `cri-containerd-${A}.scope\n`, null],
    ['not a hierarchy number', `x::/docker/${A}\n`, null],
    ['relative path', `0::docker/${A}\n`, null],
    ['id too short', `0::/docker/${A.slice(1)}\n`, null],
    ['id too long', `0::/docker/${A}0\n`, null],
    ['upper-case hex', `0::/docker/${A.toUpperCase()}\n`, null],
    ['wrong prefix', `0::/system.slice/containerd-${A}.scope\n`, null],
    ['binary noise', '\u0000\u0001\u00ff:::\n::\n:\n', null],
  ];
  for (const [name, text, want] of cases) {
    it(name, () => assert.deepEqual(containerFromCgroupFile(text), want));
  }

  it('prefers the v2 line over v1 lines when both name a container', () => {
    const text = `5:memory:/docker/${B}\n0::/kubepods/burstable/${POD}/cri-containerd-${A}.scope\n`;
    assert.deepEqual(containerFromCgroupFile(text), { id: A, runtime: 'containerd' });
  });

  it('keeps a colon inside the path', () => {
    assert.deepEqual(containerFromCgroupPath(`/odd:name/docker-${A}.scope`), { id: A, runtime: 'docker' });
    assert.deepEqual(containerFromCgroupFile(`0::/odd:name/docker-${A}.scope`), { id: A, runtime: 'docker' });
  });
});

describe('containerIdFromStatus', () => {
  it('strips the runtime scheme and lowercases', () => {
    assert.equal(containerIdFromStatus(`containerd://${A}`), A);
    assert.equal(containerIdFromStatus(`cri-o://${A}`), A);
    assert.equal(containerIdFromStatus(`docker://${A.toUpperCase()}`), A);
  });
  it('refuses empty and malformed ids', () => {
    for (const bad of [undefined, null, '', A, 'containerd://', 'containerd://not-hex', `://${A}`]) {
      assert.equal(containerIdFromStatus(bad), null, String(bad));
    }
  });
});

function pod(over: { labels?: Record<string, string>; owner?: { kind: string; name: string } | null; statuses?: [string, string][] } = {}): V1Pod {
  return {
    metadata: {
      name: 'web-7d4b9c8f6-x2x9z',
      namespace: 'shop',
      uid: 'c0ffee00-0000-4000-8000-000000000001',
      labels: over.labels ?? { 'pod-template-hash': '7d4b9c8f6' },
      ownerReferences: over.owner === null ? undefined : [{ apiVersion: 'apps/v1', kind: over.owner?.kind ?? 'ReplicaSet', name: over.owner?.name ?? 'web-7d4b9c8f6', uid: 'u', controller: true }],
    },
    spec: { nodeName: 'node-a', containers: [] },
    status: { containerStatuses: (over.statuses ?? [['app', `containerd://${A}`], ['sidecar', `containerd://${B}`]]).map(([name, containerID]) => ({ name, containerID, image: 'i', imageID: '', ready: true, restartCount: 0 })) },
  };
}

describe('podContainers', () => {
  it('indexes every container with an id; deployment from the pod-template-hash until the ReplicaSet is known', () => {
    const m = podContainers(pod(), 'node-a');
    assert.deepEqual([...m.keys()], [A, B]);
    assert.deepEqual(m.get(A), {
      namespace: 'shop', podName: 'web-7d4b9c8f6-x2x9z', podUid: 'c0ffee00-0000-4000-8000-000000000001', containerName: 'app',
      nodeName: 'node-a', deploymentName: 'web', serviceName: 'web',
    } satisfies PodMetadata);
    assert.equal(m.get(B)?.containerName, 'sidecar');
  });
  it('takes the Deployment from the ReplicaSet when known', () => {
    const m = podContainers(pod(), 'node-a', () => ({ deploymentName: 'storefront', ownerName: 'storefront' }));
    assert.equal(m.get(A)?.deploymentName, 'storefront');
    assert.equal(m.get(A)?.serviceName, 'storefront');
    const bare = podContainers(pod(), 'node-a', () => ({ deploymentName: null, ownerName: null }));
    assert.equal(bare.get(A)?.deploymentName, null);
    assert.equal(bare.get(A)?.serviceName, 'web-7d4b9c8f6');
  });
  it('service.name: app.kubernetes.io/name, else app, else the owner', () => {
    assert.equal(podContainers(pod({ labels: { 'app.kubernetes.io/name': 'checkout', app: 'x', 'pod-template-hash': '7d4b9c8f6' } }), 'n').get(A)?.serviceName, 'checkout');
    assert.equal(podContainers(pod({ labels: { app: 'cart', 'pod-template-hash': '7d4b9c8f6' } }), 'n').get(A)?.serviceName, 'cart');
    const sts = podContainers(pod({ labels: {}, owner: { kind: 'StatefulSet', name: 'db' } }), 'n').get(A);
    assert.equal(sts?.serviceName, 'db');
    assert.equal(sts?.deploymentName, null);
    const bare = podContainers(pod({ labels: {}, owner: null }), 'n').get(A);
    assert.equal(bare?.serviceName, null);
    assert.equal(bare?.deploymentName, null);
    // a hash label that does not suffix the ReplicaSet name is not trusted
    assert.equal(podContainers(pod({ labels: { 'pod-template-hash': 'zzz' } }), 'n').get(A)?.deploymentName, null);
  });
  it('skips containers without an id yet (waiting) and pods without a name', () => {
    assert.deepEqual([...podContainers(pod({ statuses: [['app', '']] }), 'n').keys()], []);
    assert.equal(podContainers({ metadata: {} }, 'n').size, 0);
  });
  it('gives the OTel resource attributes', () => {
    const m = podContainers(pod(), 'node-a').get(A);
    assert.ok(m);
    assert.deepEqual(k8sResourceAttributes(m), {
      'k8s.namespace.name': 'shop', 'k8s.pod.name': 'web-7d4b9c8f6-x2x9z', 'k8s.pod.uid': 'c0ffee00-0000-4000-8000-000000000001',
      'k8s.container.name': 'app', 'k8s.node.name': 'node-a', 'k8s.deployment.name': 'web', 'service.name': 'web',
    });
  });
});

describe('PodMetadataResolver', () => {
  it('reads a pid\'s cgroup once per TTL and asks the index every time', () => {
    let reads = 0;
    const index = new Map<string, PodMetadata>();
    const r = new PodMetadataResolver({ lookup: (id) => index.get(id) ?? null }, {
      ttlMs: 1000,
      readCgroup: (pid) => {
        reads++;
        return pid === 1 ? `0::/kubepods/${POD}/${A}\n` : pid === 2 ? '0::/system.slice/sshd.service\n' : null;
      },
    });
    assert.equal(r.metadataForPid(1, 0), null); // container known, pod not yet
    const meta = podContainers(pod(), 'node-a').get(A);
    assert.ok(meta);
    index.set(A, meta);
    assert.equal(r.metadataForPid(1, 10), meta);
    assert.equal(reads, 1);
    assert.equal(r.metadataForPid(2, 10), null);
    assert.equal(r.metadataForPid(2, 20), null);
    assert.equal(reads, 2);
    assert.equal(r.metadataForPid(3, 20), null); // gone: not cached
    assert.equal(r.metadataForPid(3, 30), null);
    assert.equal(reads, 4);
    assert.equal(r.metadataForPid(1, 2000), meta); // TTL over: read again
    assert.equal(reads, 5);
  });
});
