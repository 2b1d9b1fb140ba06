// Undo/redo as a list of graph snapshots (JSON strings): simple, and exact by construction.
export class History {
  constructor(limit = 100) {
    this.limit = limit
    this.reset(null)
  }

  reset(snapshot) {
    this.past = []
    this.future = []
    this.current = snapshot
  }

  /** Record a new state; returns false when nothing changed. */
  push(snapshot) {
    if (snapshot === this.current) return false
    if (this.current !== null) this.past.push(this.current)
    if (this.past.length > this.limit) this.past.shift()
    this.future = []
    this.current = snapshot
    return true
  }

  undo() {
    if (!this.past.length) return null
    this.future.push(this.current)
    this.current = this.past.pop()
    return this.current
  }

  redo() {
    if (!this.future.length) return null
    this.past.push(this.current)
    this.current = this.future.pop()
    return this.current
  }

  /** True if `snapshot` is the current state or one that undo/redo can reach. */
  has(snapshot) {
    return snapshot === this.current || this.past.includes(snapshot) || this.future.includes(snapshot)
  }

  get canUndo() {
    return this.past.length > 0
  }

  get canRedo() {
    return this.future.length > 0
  }
}
