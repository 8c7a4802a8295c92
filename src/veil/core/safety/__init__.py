"""Guards on what clients give: paths below a root, URLs that may only reach the public internet, zips read
without trusting them, and files only their owner may open."""
