"""Tests of gvc.models."""
