from coinstream.cli import main

main()
