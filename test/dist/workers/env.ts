/** Prints the launch environment, a line on stderr and a last line without a newline (test/dist/launch.test.ts). */
const vars = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'IGNIS_STORE_HOSTED'];
console.log(vars.map((v) => `${v}=${process.env[v]}`).join(' '));
console.log(`token ${process.env.IGNIS_STORE_TOKEN?.length ?? 0} args ${process.argv.slice(2).join(',')}`);
console.error('to stderr');
process.stdout.write('no newline');
