"""Tests of the xiaozhi device protocol package."""
