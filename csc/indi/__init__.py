"""INDI, the XML-over-TCP protocol of Linux observatories (KStars/Ekos): messages, addresses, a connection."""
