"""Developer tools: embedded servers, launcher, contract generator. Not part of any service."""
