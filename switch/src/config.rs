//! Configuration loading (owned by the config helper).
