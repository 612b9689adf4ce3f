"""The one way in: every reading, from a driver, a CSV file, a cabinet or an operator, is judged by the
VEE pipeline and written under its series' lock (`ingestor`); bulk files are streamed (`bulk`, `csvfile`)."""
