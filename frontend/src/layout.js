// Auto-layout: left-to-right layers (dagre), snapped to the canvas grid.
import dagre from '@dagrejs/dagre'
import { snap } from './graph.js'

/** Returns {id: {x, y}} top-left positions for `nodes` (Vue Flow nodes with dimensions). */
export function layeredPositions(nodes, edges) {
  const g = new dagre.graphlib.Graph({ multigraph: true })
  g.setGraph({ rankdir: 'LR', nodesep: 40, ranksep: 100, marginx: 0, marginy: 0 })
  g.setDefaultEdgeLabel(() => ({}))
  for (const n of nodes) g.setNode(n.id, { width: n.dimensions.width, height: n.dimensions.height })
  for (const e of edges) g.setEdge(e.source, e.target, {}, e.id)
  dagre.layout(g)
  const positions = {}
  for (const n of nodes) {
    const p = g.node(n.id)
    positions[n.id] = { x: snap(p.x - n.dimensions.width / 2), y: snap(p.y - n.dimensions.height / 2) }
  }
  return positions
}
