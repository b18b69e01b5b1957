//! `ipta --import`: files, gzip, rotation order, year inference, progress.
