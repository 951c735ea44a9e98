//! Engine: dispatcher, supervisor, reaper, status snapshot.
