"""The media plane: one capture per camera shared by its consumers (snapshots, later
recordings and live view), the files they write, and the index over those files."""
