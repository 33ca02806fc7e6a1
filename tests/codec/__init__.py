"""Tests of gvc.codec (the .gvc bitstream, the .gvcm model file, `gvc encode` / `gvc decode`)."""
