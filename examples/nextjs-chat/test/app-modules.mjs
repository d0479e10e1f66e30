// The app's own modules (lib/ and app/, TypeScript and TSX) for node tests:
// transpiled with the app's typescript into a temporary directory whose
// node_modules is the app's, with '@/…' imports made relative. Nothing of
// Next.js's build is needed.
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const app = dirname(dirname(fileURLToPath(import.meta.url)));
const require = createRequire(join(app, 'package.json'));

/**
 * Transpiles the app into a temporary directory. Returns import(path) for
 * a module by its path in the app ('app/rooms/[roomId]/room.tsx') and
 * remove().
 */
export function transpileApp() {
  const ts = require('typescript');
  const out = mkdtempSync(join(tmpdir(), 'nextjs-chat-test-'));
  symlinkSync(join(app, 'node_modules'), join(out, 'node_modules'));
  writeFileSync(join(out, 'package.json'), '{"type":"module"}');
  const emit = (p) => {
    const { outputText } = ts.transpileModule(readFileSync(join(app, p), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, jsx: ts.JsxEmit.ReactJSX },
    });
    const rel = (spec) => {
      const r = relative(dirname(join(out, p)), join(out, spec));
      return r.startsWith('.') ? r : `./${r}`;
    };
    const js = outputText
      .replace(/from '(@\/[^']+|\.{1,2}\/[^']+)'/g, (_, s) => `from '${s.startsWith('@/') ? rel(s.slice(2)) : s}.js'`)
      .replace(/from 'next\/(link|navigation|headers|server)'/g, "from 'next/$1.js'")
      .replace(/import '\.\/globals\.css\.js';/, '');
    const dst = join(out, p.replace(/\.tsx?$/, '.js'));
    mkdirSync(dirname(dst), { recursive: true });
    writeFileSync(dst, js);
  };
  const walk = (d) => {
    for (const f of readdirSync(join(app, d))) {
      const p = join(d, f);
      if (statSync(join(app, p)).isDirectory()) walk(p);
      else if (/\.tsx?$/.test(f) && !f.endsWith('.d.ts')) emit(p);
    }
  };
  walk('lib');
  walk('app');
  return {
    module: (p) => import(pathToFileURL(join(out, p.replace(/\.tsx?$/, '.js'))).href),
    remove: () => rmSync(out, { recursive: true, force: true }),
  };
}
