<?xml version="1.0"?>
<!-- SPDX-License-Identifier: LGPL-2.1-or-later -->
<!-- The members of a D-Bus introspection file, one "KIND INTERFACE NAME" a line. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="text" encoding="UTF-8"/>

  <xsl:template match="/">
    <xsl:for-each select="/node/interface/method | /node/interface/property | /node/interface/signal">
      <xsl:value-of select="concat(local-name(), ' ', ../@name, ' ', @name, '&#10;')"/>
    </xsl:for-each>
  </xsl:template>
</xsl:stylesheet>
