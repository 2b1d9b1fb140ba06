// NiceGUI loads this file for FlowCanvas: the real component is the Vite bundle mapped to `flowboard-canvas`.
import { FlowCanvas } from "flowboard-canvas";

if (!document.querySelector("link[data-flowboard-canvas]")) {
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = import.meta.resolve("flowboard-canvas/style.css");
  link.dataset.flowboardCanvas = "";
  document.head.appendChild(link);
}

export default FlowCanvas;
