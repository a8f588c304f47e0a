"""ATCamera: takeImages, a physical pixel model, atomic FITS files and the acquired-images registry."""
