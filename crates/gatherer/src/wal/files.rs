//! Where segments live: files in a directory, behind traits a test replaces to inject
//! faults.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

/// Where segments live and how to open them; a test replaces it to inject faults.
pub trait SegmentStore: Send + 'static {
    /// Opens (creating if needed) a segment for appending, returns it with its length.
    fn open(&mut self, name: &str) -> io::Result<(Box<dyn SegmentFile>, u64)>;
    /// Makes a newly created file's directory entry durable.
    fn sync_dir(&mut self) -> io::Result<()>;
}

/// An open segment: append, make durable, cut back.
pub trait SegmentFile: Send {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn sync(&mut self) -> io::Result<()>;
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// Segments as files in a directory.
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    pub fn new(dir: PathBuf) -> Self {
        DirStore { dir }
    }
}

impl SegmentStore for DirStore {
    fn open(&mut self, name: &str) -> io::Result<(Box<dyn SegmentFile>, u64)> {
        std::fs::create_dir_all(&self.dir)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))?;
        let len = file.metadata()?.len();
        Ok((Box::new(file), len))
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

impl SegmentFile for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)?;
        self.sync_data()
    }
}
