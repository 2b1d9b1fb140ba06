// Auto-layout: left-to-right layers (dagre), snapped to the canvas grid, branches in the order of their outputs.
import dagre from '@dagrejs/dagre'
import { snap } from './graph.js'

/** Returns {id: {x, y}} top-left positions for `nodes` (Vue Flow nodes with dimensions). */
export function layeredPositions(nodes, edges) {
  const portIndex = (e) => {
    const outputs = nodes.find((n) => n.id === e.source)?.data?.outputs ?? []
    return Math.max(0, outputs.indexOf(e.sourceHandle))
  }
  // Edges in output order (true before false): dagre's first ordering follows insertion order.
  const ordered = [...edges].sort((a, b) => portIndex(a) - portIndex(b))
  const g = new dagre.graphlib.Graph({ multigraph: true })
  g.setGraph({ rankdir: 'LR', nodesep: 50, ranksep: 110, marginx: 0, marginy: 0 })
  g.setDefaultEdgeLabel(() => ({}))
  for (const n of nodes) g.setNode(n.id, { width: n.dimensions.width, height: n.dimensions.height })
  for (const e of ordered) g.setEdge(e.source, e.target, {}, e.id)
  dagre.layout(g)
  const center = {}
  for (const n of nodes) center[n.id] = { x: g.node(n.id).x, y: g.node(n.id).y }
  keepBranchOrder(center, ordered, portIndex)
  const positions = {}
  for (const n of nodes) {
    const p = center[n.id]
    positions[n.id] = { x: snap(p.x - n.dimensions.width / 2), y: snap(p.y - n.dimensions.height / 2) }
  }
  return positions
}

/** Where dagre put a node's branches out of order (false above true), swap their rows, each with the part of the
 * flow that only it leads to, so the first output's branch is always the upper one. */
function keepBranchOrder(center, edges, portIndex) {
  const parents = {}
  const children = {}
  for (const e of edges) {
    ;(parents[e.target] ??= new Set()).add(e.source)
    ;(children[e.source] ??= []).push(e)
  }
  const only = (root) => {
    // `root` and the nodes reachable only through it
    const out = new Set([root])
    const queue = [root]
    while (queue.length) {
      for (const e of children[queue.shift()] ?? []) {
        if (!out.has(e.target) && [...(parents[e.target] ?? [])].every((p) => out.has(p))) {
          out.add(e.target)
          queue.push(e.target)
        }
      }
    }
    return out
  }
  for (const [source, out] of Object.entries(children)) {
    const branches = out
      .filter((e) => parents[e.target]?.size === 1 && Math.abs(center[e.target].x - center[source].x) > 1)
      .sort((a, b) => portIndex(a) - portIndex(b))
    const rows = branches.map((e) => center[e.target].y).sort((a, b) => a - b)
    branches.forEach((e, i) => {
      const dy = rows[i] - center[e.target].y
      if (dy) for (const id of only(e.target)) center[id] = { ...center[id], y: center[id].y + dy }
    })
  }
}
