// The same two machines as local_engine.py, on aws-local-stepfunctions (Node, in-process).
//
//   node bench/local_engine_node.mjs EXECUTIONS ROUNDS
//
// Run by `python bench/local_engine.py --node`, which installs the package and puts it on
// NODE_PATH. Prints one JSON line: the fastest round's seconds per execution for each machine.

// aws-local-stepfunctions 3 calls Promise.withResolvers, which Node before 22 lacks.
if (!Promise.withResolvers) {
  Promise.withResolvers = function () {
    let resolve, reject;
    const promise = new this((done, failed) => {
      resolve = done;
      reject = failed;
    });
    return { promise, resolve, reject };
  };
}

const { createRequire } = await import("node:module");
const require = createRequire(process.env.NODE_PATH.split(":")[0] + "/");
const { StateMachine } = require("aws-local-stepfunctions");

const lambda = (name) => `arn:aws:lambda:us-east-1:123456789012:function:${name}`;
const taskChoiceTask = {
  StartAt: "Validate",
  States: {
    Validate: { Type: "Task", Resource: lambda("Validate"), ResultPath: "$.validation", Next: "Exists?" },
    "Exists?": {
      Type: "Choice",
      Choices: [{ Variable: "$.validation.exists", BooleanEquals: true, Next: "Skip" }],
      Default: "Add",
    },
    Add: { Type: "Task", Resource: lambda("Add"), ResultPath: null, End: true },
    Skip: { Type: "Succeed" },
  },
};
const passStates = {};
for (let i = 0; i < 10; i++) {
  passStates[`P${i}`] = i < 9 ? { Type: "Pass", Next: `P${i + 1}` } : { Type: "Pass", End: true };
}
const passChain = { StartAt: "P0", States: passStates };

const record = { dragon_name_str: "Atlas", family_str: "red" };
const localFunctions = {
  taskResourceLocalHandlers: { Validate: async () => ({ exists: false }), Add: async () => null },
};

const [executions, rounds] = process.argv.slice(2).map(Number);

async function secondsPerExecution(machine, overrides) {
  const started = process.hrtime.bigint();
  let result;
  for (let i = 0; i < executions; i++) {
    result = await machine.run(record, { overrides }).result;
  }
  if (result === undefined) throw new Error("the execution returned nothing");
  return Number(process.hrtime.bigint() - started) / 1e9 / executions;
}

const cases = [
  [new StateMachine(taskChoiceTask), localFunctions],
  [new StateMachine(passChain), {}],
];
const best = [Infinity, Infinity];
for (const [machine, overrides] of cases) await secondsPerExecution(machine, overrides); // warm up
for (let round = 0; round < rounds; round++) {
  for (const [index, [machine, overrides]] of cases.entries()) {
    best[index] = Math.min(best[index], await secondsPerExecution(machine, overrides));
  }
}
console.log(JSON.stringify({ taskChoiceTask: best[0], passChain: best[1] }));
