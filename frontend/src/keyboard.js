// Which canvas owns the keyboard: the one last clicked (several canvases can share a page).
export const CLIPBOARD_KEY = 'flowboard.clipboard'

let owner = null

export function claimKeyboard(canvas, { onlyIfFree = false } = {}) {
  if (!onlyIfFree || owner === null) owner = canvas
}

export function releaseKeyboard(canvas) {
  if (owner === canvas) owner = null
}

export const ownsKeyboard = (canvas) => owner === canvas

/** Typing in a field (palette search, an inspector form) keeps its own keys. */
export function isEditable(target) {
  if (!(target instanceof Element)) return false
  return !!target.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]')
}
