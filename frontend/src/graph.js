// Pure graph helpers: the Python <-> Vue Flow shapes, ids, connection rules, clipboard.
// Nothing here touches the DOM or the Vue Flow store, so every rule is easy to read in one place.
import { markRaw } from 'vue'

export const NODE_WIDTH = 220
export const GRID = 20
const CORE_KEYS = ['id', 'type', 'name', 'position', 'inputs', 'outputs', 'disabled']

/** Node height follows the number of ports on its busier side, so handles never crowd. */
export function nodeHeight(inputs, outputs) {
  const ports = Math.max(inputs.length, outputs.length, 1)
  return Math.max(64, ports * 26 + 12)
}

// Set on every edge (not as VueFlow's default-edge-options, which miss the edges set before it mounts).
const EDGE_MARKER = { type: 'arrowclosed', width: 18, height: 18, color: '#94a3b8' }

export const edgeId = (e) => `${e.source}:${e.source_port}->${e.target}:${e.target_port}`

const clone = (value) => JSON.parse(JSON.stringify(value ?? null))

/** A Python node dict becomes a Vue Flow node; fields we do not know ride along in data.extra. */
export function toFlowNode(node, catalog) {
  const spec = catalog.get(node.type)
  const inputs = [...(node.inputs ?? spec?.inputs ?? ['main'])]
  const outputs = [...(node.outputs ?? spec?.outputs ?? ['main'])]
  const extra = {}
  for (const [key, value] of Object.entries(node)) if (!CORE_KEYS.includes(key)) extra[key] = clone(value)
  return {
    id: String(node.id),
    type: 'flowboard',
    position: { x: Number(node.position?.x ?? 0), y: Number(node.position?.y ?? 0) },
    // Known up front, so Vue Flow can skip off-screen nodes before it has measured them.
    dimensions: markRaw({ width: NODE_WIDTH, height: nodeHeight(inputs, outputs) }),
    data: { type: node.type, name: node.name ?? spec?.title ?? node.id, inputs, outputs, disabled: !!node.disabled, extra },
  }
}

export function toFlowEdge(edge) {
  const extra = {}
  for (const [key, value] of Object.entries(edge)) {
    if (!['source', 'source_port', 'target', 'target_port'].includes(key)) extra[key] = clone(value)
  }
  return {
    id: edgeId(edge),
    type: 'flowboard',
    source: String(edge.source),
    target: String(edge.target),
    sourceHandle: edge.source_port ?? 'main',
    targetHandle: edge.target_port ?? 'main',
    markerEnd: EDGE_MARKER,
    data: { extra },
  }
}

export function fromFlowNode(n) {
  const d = n.data
  return {
    id: n.id,
    type: d.type,
    name: d.name,
    position: { x: Math.round(n.position.x), y: Math.round(n.position.y) },
    inputs: [...d.inputs],
    outputs: [...d.outputs],
    disabled: !!d.disabled,
    ...clone(d.extra ?? {}),
  }
}

export function fromFlowEdge(e) {
  return {
    source: e.source,
    source_port: e.sourceHandle,
    target: e.target,
    target_port: e.targetHandle,
    ...clone(e.data?.extra ?? {}),
  }
}

/** The graph as Python sees it: same shape in, same shape out (a normalising round trip). */
export function normalizeGraph(graph, catalog) {
  const nodes = (graph?.nodes ?? []).map((n) => fromFlowNode(toFlowNode(n, catalog)))
  const ids = new Set(nodes.map((n) => n.id))
  const edges = (graph?.edges ?? [])
    .filter((e) => ids.has(String(e.source)) && ids.has(String(e.target)))
    .map((e) => fromFlowEdge(toFlowEdge(e)))
  return { nodes, edges }
}

/** `http.request` -> `request`; then `request_2`, `request_3`, ... until free. */
export function slug(text) {
  const last = String(text ?? '').split('.').pop()
  const s = last.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '')
  return s ? (/^[0-9]/.test(s) ? `n_${s}` : s) : 'node'
}

export function uniqueId(base, taken) {
  if (!taken.has(base)) return base
  let i = 2
  while (taken.has(`${base}_${i}`)) i += 1
  return `${base}_${i}`
}

/** `name`, or the first of "name 2", "name 3", ... not in `taken` ("Send email 2" counts on from "Send email"). */
export function uniqueName(name, taken) {
  if (!taken.has(name)) return name
  const base = name.replace(/ \d+$/, '')
  let i = 2
  while (taken.has(`${base} ${i}`)) i += 1
  return `${base} ${i}`
}

export const snap = (v) => Math.round(v / GRID) * GRID

/** True if a path already leads from `from` to `to` (so to -> from would close a loop). */
export function reaches(from, to, edges) {
  const next = new Map()
  for (const e of edges) {
    if (!next.has(e.source)) next.set(e.source, [])
    next.get(e.source).push(e.target)
  }
  const seen = new Set([from])
  const stack = [from]
  while (stack.length) {
    const id = stack.pop()
    if (id === to) return true
    for (const n of next.get(id) ?? []) if (!seen.has(n)) (seen.add(n), stack.push(n))
  }
  return false
}

/**
 * Why a connection is refused, in the user's words, or null when it is fine.
 * `from`/`to` are handles: { nodeId, id (port), type: 'source' (output) | 'target' (input) }.
 */
export function connectionProblem(from, to, edges, nameOf) {
  if (from.type === to.type) {
    return from.type === 'source'
      ? 'Both ports are outputs. Connect an output (right side) to an input (left side).'
      : 'Both ports are inputs. Connect an output (right side) to an input (left side).'
  }
  const [out, inp] = from.type === 'source' ? [from, to] : [to, from]
  if (out.nodeId === inp.nodeId) return 'A step cannot connect to itself.'
  const dup = edges.some(
    (e) => e.source === out.nodeId && e.sourceHandle === out.id && e.target === inp.nodeId && e.targetHandle === inp.id,
  )
  if (dup) return 'These two ports are already connected.'
  if (reaches(inp.nodeId, out.nodeId, edges)) {
    return `This would create a loop: "${nameOf(inp.nodeId)}" already leads to "${nameOf(out.nodeId)}".`
  }
  return null
}

/** Parse clipboard text as flow JSON ({nodes, edges}); null if it is anything else. */
export function parseClipboard(text) {
  if (!text || typeof text !== 'string') return null
  try {
    const data = JSON.parse(text)
    if (!data || !Array.isArray(data.nodes)) return null
    if (!data.nodes.every((n) => n && typeof n.id === 'string' && typeof n.type === 'string')) return null
    return { nodes: data.nodes, edges: Array.isArray(data.edges) ? data.edges : [] }
  } catch {
    return null
  }
}

/** Give pasted nodes fresh ids and shift them until they do not sit exactly on existing nodes. */
export function preparePaste(clip, existingNodes) {
  const taken = new Set(existingNodes.map((n) => n.id))
  const names = new Set(existingNodes.map((n) => n.data?.name ?? n.name))
  const rename = new Map()
  for (const n of clip.nodes) {
    const id = uniqueId(slug(n.id.replace(/_\d+$/, '')), taken)
    taken.add(id)
    rename.set(n.id, id)
  }
  const occupied = new Set(existingNodes.map((n) => `${Math.round(n.position.x)},${Math.round(n.position.y)}`))
  let offset = 2 * GRID
  const at = (n, d) => `${Math.round((n.position?.x ?? 0) + d)},${Math.round((n.position?.y ?? 0) + d)}`
  while (clip.nodes.some((n) => occupied.has(at(n, offset))) && offset < 100 * GRID) offset += 2 * GRID
  const nodes = clip.nodes.map((n) => {
    const copy = { ...clone(n), id: rename.get(n.id) }
    copy.position = { x: (n.position?.x ?? 0) + offset, y: (n.position?.y ?? 0) + offset }
    if (typeof n.name === 'string' && n.name) names.add((copy.name = uniqueName(n.name, names))) // never two alike
    return copy
  })
  const edges = clip.edges
    .filter((e) => rename.has(e.source) && rename.has(e.target))
    .map((e) => ({ ...clone(e), source: rename.get(e.source), target: rename.get(e.target) }))
  return { nodes, edges }
}
