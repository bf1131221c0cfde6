// The reproduction of "a cancelled or timed-out upload is committed as a shortened object" with an
// independent client (grpc-js, whose Node HTTP/2 stream half-closes before it resets on cancel):
// UpdateObject of a 5 MiB object, a header without size, 786,432 bytes, a pause, then a cancel or a
// deadline. Every round must leave the 5 MiB version.
// Usage: node grpc_js_cancel.js HOST:PORT TOKEN PROTO_DIR ROUNDS
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const [endpoint, token, protoDir, roundsArg] = process.argv.slice(2);
const def = loader.loadSync('mcos/v1/user.proto',
    {includeDirs: [protoDir], keepCase: true, longs: String, defaults: true});
const pkg = grpc.loadPackageDefinition(def).mcos.v1;
const client = new pkg.UserService(endpoint, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
md.add('authorization', 'Bearer ' + token);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stat = () => new Promise((res, rej) => client.StatObject(
    {container: 'js', object: 'obj'}, md, (e, r) => (e ? rej(e) : res(r))));

(async () => {
  let bad = 0;
  const rounds = Number(roundsArg);
  for (let i = 0; i < rounds; i++) {
    const byDeadline = i % 2 === 1;
    const opts = byDeadline ? {deadline: Date.now() + 300} : {};
    let done;
    const finished = new Promise((r) => (done = r));
    const call = client.UpdateObject(md, opts, (err) => done(err ? err.code : 0));
    call.write({header: {container: 'js', object: 'obj'}});
    for (let k = 0; k < 12; k++) call.write({data: Buffer.alloc(65536, 'p')});
    if (!byDeadline) {
      await sleep(300);
      call.cancel();
    }
    const code = await finished;
    const s = await stat();
    if (s.size !== '5242880') bad++;
    console.log(`round ${i}: ${byDeadline ? 'deadline' : 'cancel'}, client saw code ${code}, ` +
                `object size ${s.size}`);
  }
  console.log(`${bad} of ${rounds} rounds committed a part`);
  process.exit(bad === 0 ? 0 : 1);
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
