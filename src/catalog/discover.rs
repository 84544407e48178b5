//! Interpreter discovery: find a handler's interpreter, its version, and whether it is static.
