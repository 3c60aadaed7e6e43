"""One module per dataset family: its row parser and its loader (`load_<name>(cfg) -> TaskData`).

Loaders are named in `cowest.tasks.registry.BUILTIN`; nothing here registers itself on import.
"""
