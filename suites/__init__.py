"""The conformance cases: one module per group of requirements (docs/catalogue.md)."""
