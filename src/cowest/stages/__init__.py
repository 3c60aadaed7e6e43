"""The method's stages, one module each: `sft`, `mine` (collaborative feedback), `dpo` (alignment) and `evaluate`.

Each stage is a function of a `RunContext` (the recipe, the task, the models and the ledger): it reads what the
stages before it wrote, does its work, checks that the work did something, and records it in its manifest.
`cowest.run.Run` only orders them.
"""
