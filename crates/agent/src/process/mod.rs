//! Monitor, launcher and stop of agent process trees.
