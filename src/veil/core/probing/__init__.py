"""What an uploaded file is, told from its content, and what its headers say, read without decoding a pixel
(videos in a bounded child process)."""
