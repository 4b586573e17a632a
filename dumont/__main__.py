from dumont.cli import main

main()
