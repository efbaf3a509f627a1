/** `npm start`: what this build can do, shown on a built-in example (no download). */
import { addRmsNorm, cast } from './ops/index.js';
import { runtimeInfo } from './runtime/info.js';
import { tensor } from './runtime/tensor.js';

export async function demo(_args: string[]): Promise<void> {
  const info = runtimeInfo();
  console.log(JSON.stringify(info, null, 2));
  const device = info.devices.some((d) => d.kind === 'cuda') ? 'cuda:0' : 'cpu';
  const [rows, dim] = [64, 7168];
  const data = new Float32Array(rows * dim).map(() => Math.random() * 2 - 1);
  using x = tensor(data, { shape: [rows, dim], dtype: 'bf16', device });
  using residual = tensor(data.map((v) => v * 0.5), { shape: [rows, dim], dtype: 'bf16', device });
  using weight = tensor(new Float32Array(dim).fill(1), { device });
  const t0 = performance.now();
  const { out, residual: sum } = addRmsNorm(x, residual, weight, 1e-6);
  using f = cast(out, 'f32');
  const values = await f.toFloat32Array();
  const ms = performance.now() - t0;
  out.dispose();
  sum.dispose();
  let ss = 0;
  for (let i = 0; i < dim; ++i) ss += values[i] * values[i];
  console.log(
    `\naddRmsNorm on ${device}: [${rows}, ${dim}] bf16 in ${ms.toFixed(2)} ms; ` +
      `row 0 has rms ${Math.sqrt(ss / dim).toFixed(4)} (1 expected), first values ${Array.from(values.slice(0, 4), (v) => v.toFixed(4)).join(', ')}`,
  );
}
