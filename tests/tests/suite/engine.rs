//! Engine-level tests with a toy workflow: the apalis 1.0 pitfalls and the engine guarantees.
