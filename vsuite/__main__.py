from vsuite.cli import main

main()
