// Builds the canvas as one ES module for NiceGUI: flowboard/ui/dist/index.js + style.css.
// `vue` stays external: NiceGUI's importmap hands the bundle the page's own Vue.
// Also copies Swagger UI's files (the devDependency swagger-ui-dist) to dist/swagger/ for the offline /docs page.
import { copyFileSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

const SWAGGER_FILES = ['swagger-ui-bundle.js', 'swagger-ui.css', 'favicon-32x32.png', 'LICENSE', 'NOTICE']

function swaggerUi() {
  return {
    name: 'flowboard-swagger-ui',
    writeBundle(options) {
      const from = fileURLToPath(new URL('./node_modules/swagger-ui-dist/', import.meta.url))
      const to = `${options.dir}/swagger`
      mkdirSync(to, { recursive: true })
      for (const name of SWAGGER_FILES) copyFileSync(`${from}${name}`, `${to}/${name}`)
    },
  }
}

export default defineConfig({
  plugins: [vue(), swaggerUi()],
  define: { 'process.env.NODE_ENV': '"production"' },
  build: {
    outDir: fileURLToPath(new URL('../flowboard/ui/dist', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    reportCompressedSize: false,
    minify: true,
    lib: {
      entry: fileURLToPath(new URL('./src/index.js', import.meta.url)),
      formats: ['es'],
      fileName: () => 'index.js',
      cssFileName: 'style',
    },
    rollupOptions: { external: ['vue'], output: { minify: true } },
  },
})
