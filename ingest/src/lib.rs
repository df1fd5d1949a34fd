//! edgelens ingest
