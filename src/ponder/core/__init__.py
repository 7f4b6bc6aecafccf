"""The core layer: the types every other layer speaks, errors, the ledger and budget, the
compute gate (``Context``), the engine, task and scorer protocols, and the execution seam
(the sandbox and the program harness). It imports nothing else of ponder."""
