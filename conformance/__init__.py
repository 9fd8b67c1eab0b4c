"""ImageVolume (KEP-4639) conformance suite."""
