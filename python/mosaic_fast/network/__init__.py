"""The network model: node speeds and links (spec), the transfer scheduler, the round clock."""
