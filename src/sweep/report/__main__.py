from sweep.report.document import main

main()
