// models_ort.js - the ONNX Runtime peer of bench/models.sh (npm's onnxruntime-node, CPU provider,
// graph optimisations 'all', intraOpNumThreads = T, interOpNumThreads = 1, sequential execution).
//
//   node models_ort.js time FILE SHAPE B T R W   W untimed then R timed runs on a batch of B
//                                                (SHAPE: one sample's, "3,224,224"); prints
//                                                {"median_s", "cpu_median_s"} (wall and process
//                                                CPU time a run, process.cpuUsage)
//   node models_ort.js run FILE SHAPE IN.f32 OUT.f32   the first output on a batch of raw floats
//
// NODE_PATH names the folder that holds node_modules/onnxruntime-node (bench/models.sh sets it).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function session(file, threads) {
    return ort.InferenceSession.create(file, {
        executionProviders: ['cpu'],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
    });
}

function median(v) {
    const s = [...v].sort((a, b) => a - b), n = s.length;
    return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

async function main() {
    const [cmd, file, shapeText] = process.argv.slice(2);
    const shape = shapeText.split(',').map(Number);
    if (cmd === 'time') {
        const [b, t, runs, warm] = process.argv.slice(5, 9).map(Number);
        const s = await session(file, t);
        const n = b * shape.reduce((a, c) => a * c, 1);
        const x = new Float32Array(n);
        let seed = 12345;
        for (let i = 0; i < n; i++) {
            seed = (seed * 1103515245 + 12345) % 2147483648;
            x[i] = seed / 2147483648;
        }
        const feeds = {[s.inputNames[0]]: new ort.Tensor('float32', x, [b, ...shape])};
        const wall = [], cpu = [];
        for (let r = -warm; r < runs; r++) {
            const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
            await s.run(feeds);
            const c = process.cpuUsage(c0);
            if (r >= 0) {
                wall.push(Number(process.hrtime.bigint() - t0) * 1e-9);
                cpu.push((c.user + c.system) * 1e-6);
            }
        }
        console.log(JSON.stringify({median_s: median(wall), cpu_median_s: median(cpu)}));
    } else if (cmd === 'run') {
        const [inFile, outFile] = process.argv.slice(5, 7);
        const s = await session(file, 1);
        const buf = fs.readFileSync(inFile);
        const x = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
        const b = x.length / shape.reduce((a, c) => a * c, 1);
        const out = await s.run({[s.inputNames[0]]: new ort.Tensor('float32', x, [b, ...shape])});
        const y = out[s.outputNames[0]].data;
        fs.writeFileSync(outFile, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
    } else {
        throw new Error(`models_ort.js: unknown command '${cmd}'`);
    }
}

main().catch((e) => {
    console.error(`models_ort.js: ${e.message}`);
    process.exit(1);
});
