// Classify a cache-tests results file the way cache-tests.fyi does, and print it for a terminal.
//
// The raw results map test id -> true | [errorName, message]; what that means depends on the
// test's `kind` (required | optimal | check) and its `depends_on`, so we reuse the suite's own
// classifier (lib/display.mjs determineTestResult) instead of re-deriving its rules.
//
// Usage: node summarize.mjs RESULTS.json

import fs from 'fs'
import process from 'process'

import suites from 'http-cache-tests/tests/index.mjs'
import surrogate from 'http-cache-tests/tests/surrogate-control.mjs'
import { determineTestResult } from 'http-cache-tests/lib/display.mjs'

// cli.mjs runs the surrogate-control suite too, so its results carry those ids.
const allSuites = [...suites, surrogate]

// determineTestResult returns [fontAwesomeGlyph, colour, textSymbol]; name them by the symbol.
const OUTCOME_BY_SYMBOL = {
  '✅': 'pass',
  '⛔️': 'fail',
  '⚠️': 'fail',
  Y: 'pass',
  N: 'fail',
  '🔹': 'setup_fail',
  '⁉️': 'harness_fail',
  '⚪️': 'dependency_fail',
  '↻': 'retry',
  '-': 'untested'
}
const OUTCOMES = ['pass', 'fail', 'setup_fail', 'dependency_fail', 'harness_fail', 'retry', 'untested']
const KINDS = ['required', 'optimal', 'check']

const resultsPath = process.argv[2]
if (resultsPath === undefined) {
  console.error('usage: node summarize.mjs RESULTS.json')
  process.exit(2)
}
const results = JSON.parse(fs.readFileSync(resultsPath, 'utf8'))

const counts = Object.fromEntries(KINDS.map(kind => [kind, Object.fromEntries(OUTCOMES.map(o => [o, 0]))]))
const notPassed = []
for (const suite of allSuites) {
  for (const test of suite.tests) {
    if (test.browser_only === true) continue
    const kind = test.kind ?? 'required'
    const outcome = OUTCOME_BY_SYMBOL[determineTestResult(allSuites, test.id, results)[2]]
    counts[kind][outcome] += 1
    if (outcome !== 'pass') {
      const detail = Array.isArray(results[test.id]) ? results[test.id][1] : ''
      notPassed.push({ kind, outcome, suite: suite.name, id: test.id, name: test.name, detail })
    }
  }
}

const pad = (value, width) => String(value).padStart(width)
console.log(`kind      ${OUTCOMES.map(o => pad(o, 16)).join('')}   total`)
for (const kind of KINDS) {
  const row = counts[kind]
  const total = OUTCOMES.reduce((sum, o) => sum + row[o], 0)
  console.log(`${kind.padEnd(10)}${OUTCOMES.map(o => pad(row[o], 16)).join('')}${pad(total, 8)}`)
}

// Required failures first: those are conformance problems; optimal ones are missed reuse;
// 'check' tests only record behaviour the spec leaves open.
for (const kind of KINDS) {
  for (const outcome of OUTCOMES.slice(1)) {
    const group = notPassed.filter(t => t.kind === kind && t.outcome === outcome)
    if (group.length === 0) continue
    console.log(`\n== ${kind} / ${outcome} (${group.length})`)
    for (const t of group) {
      const detail = t.detail ? `  -- ${t.detail}` : ''
      console.log(`  ${t.id}  [${t.suite}] ${t.name}${detail}`)
    }
  }
}
