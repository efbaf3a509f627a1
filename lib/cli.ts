#!/usr/bin/env node
/**
 * The `deepseek-native` command.
 *   info                 one JSON object: version, addon loaded, backends, devices, SIMD path, threads
 *   demo                 info, then a short run of ops on the best device
 */
import { runtimeInfo } from './runtime/info.js';
import { demo } from './demo.js';

const USAGE = `Usage: deepseek-native <command> [options]

Commands:
  info      print the package version, addon, backends, devices, SIMD path and threads as JSON
  demo      print info, then run a short op demo
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'info':
      process.stdout.write(JSON.stringify(runtimeInfo(), null, 2) + '\n');
      return 0;
    case 'demo':
      await demo(rest);
      return 0;
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`deepseek-native: unknown command '${command}'\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`deepseek-native: ${err.message}\n`);
    process.exitCode = 1;
  },
);
