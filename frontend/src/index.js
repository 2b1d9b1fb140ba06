// The package entry: NiceGUI imports this as `flowboard-canvas` (see flowboard/ui/flow_canvas.js).
export { default as FlowCanvas } from './FlowCanvas.vue'
